"""Publishing a group's messages in bulk."""
