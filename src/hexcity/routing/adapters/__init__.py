"""Implementations of the routing ports: OSM reading, graph artefacts, cache stores."""
