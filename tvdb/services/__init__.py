"""Services the pipeline calls: protocols, local (mock) implementations, remote clients, router."""
