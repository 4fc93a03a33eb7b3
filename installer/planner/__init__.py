"""What a planner builds: the vessel spec (pure) and signed installer bundles.
"""
