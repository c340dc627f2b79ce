"""Pure routing model and algorithms: profiles, road network, contraction hierarchies, queries."""
