"""The auth service: users, API keys, signing keys and short-lived EdDSA access tokens."""
