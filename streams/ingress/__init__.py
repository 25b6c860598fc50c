"""Ingress: the Kafka producer side. Webhooks and first-party events become raw records."""
