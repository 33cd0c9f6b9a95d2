"""Live channels in the service: the tasks that feed the core's channel index."""
