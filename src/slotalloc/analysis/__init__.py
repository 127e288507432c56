"""Reading results: explanations, the fairness audit, capacity planning, reports and diffs.

Each module reads an instance and a result or solution and never changes
them; none is on the solving path.
"""
