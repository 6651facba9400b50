"""The jobs service: jobs, webhooks and the model routing table."""
