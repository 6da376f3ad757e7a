"""The pieces behind ``python -m turbogroup bench`` (see ``turbogroup.bench``):
brokers, timed rounds, peers, collection and the plot, one file each."""
