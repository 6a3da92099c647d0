"""The webhook: an HTTP endpoint that writes posts pushed to it (by any system, Facebook's webhooks too) to the
raw topic, answering only once Kafka has them (``python -m producer.webhook``)."""
