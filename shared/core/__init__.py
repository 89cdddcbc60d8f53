"""Core: settings, errors, clock, ids, keys, URLs, field types, bounded parsers. Imports nothing else of PackCloud."""
