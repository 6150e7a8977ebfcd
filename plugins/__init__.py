"""FAD-TQ's built-in plugins (import name ``fadtq_plugins``), registered through the same plugin
manager and hooks as third-party ones."""
