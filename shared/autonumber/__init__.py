"""Auto-numbering: sequence definitions, counters, value formats."""
