"""From a Scenario to a CallPlan: voices and audio conditions rendered per turn, and
Hypothesis strategies over scenarios."""
