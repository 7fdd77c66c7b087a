"""Checkers for the chapters' exercises: each ``check_*`` prints right/wrong with the max error."""
