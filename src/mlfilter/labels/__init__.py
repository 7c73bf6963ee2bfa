"""Labels: aggregate annotators' scores into one label per document and task, and split them leak-free."""
