"""Tracked links to shared assets (the Powers pack): short links that redirect and record the visit."""
