"""Rate limits shared by every replica: GCRA over a compare-and-set store (NATS KV)."""
