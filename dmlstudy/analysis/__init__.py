"""What finished runs say: run tables, paired comparisons over test classes and seeds, findings,
training recipes, convergence, the stopping rule replayed on committed curves."""
