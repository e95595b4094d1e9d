"""qa-eval's library: score a predictions file against gold data with the official SQuAD rules."""
