"""Upper bounds on the score: the LP relaxation and the Lagrangian dual."""
