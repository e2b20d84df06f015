"""Local emulators of AWS services and a demo agent, for development and tests."""
