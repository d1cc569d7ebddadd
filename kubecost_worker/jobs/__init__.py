"""Around the core: tenant-hour jobs, the queues (kombu), the consumer and the hourly scheduler.

Everything here calls ``pipeline.Pipeline.run_hour``; nothing here computes or stores a cost itself.
"""
