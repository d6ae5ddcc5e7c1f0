"""Moving to a new device: the old device offers its backup archive and model files behind a
one-time code; the new device pulls them over the local network with resume, checks each
sha256, restores the archive and installs the models."""
