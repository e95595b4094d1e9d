"""qa-answer --ray: plan the input into look-ahead groups on the driver, answer them on Ray actors."""
