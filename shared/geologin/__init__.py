"""Sign-in logging: sign-ins, the offline locator, the impossible-travel rule."""
