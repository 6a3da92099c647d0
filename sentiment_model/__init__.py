"""The sentiment model: the offline 3-class classifier, the data it learns from, and its build."""
