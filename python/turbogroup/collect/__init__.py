"""Collecting a group's results in batches instead of one round trip each."""
