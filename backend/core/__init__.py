"""What every part of gridless shares and that depends on no part of it: errors, units, file
kinds, thumbnails, the settings and where the app's own files are."""
