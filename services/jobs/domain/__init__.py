"""The jobs service's rules: job states, request validation, routing, webhooks, paging, limits."""
