"""Around the core: tenant-hour jobs, the queues (kombu), the consumer and the hourly scheduler.

The consumer runs jobs through ``pipeline.Pipeline.batches``; nothing here computes or stores a cost itself.
"""
