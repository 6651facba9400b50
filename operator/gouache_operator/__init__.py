"""gouache's Kubernetes operator: ModelVersion canaries on GPUPools (Kopf)."""
