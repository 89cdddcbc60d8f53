"""The public privacy notice of every dataset (GDPR art. 13): its content, languages and page."""
