"""The operator's rules: specs, placement, analysis and the rollout state machine; no Kopf, no I/O."""
