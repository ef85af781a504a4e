"""Files in and out: reading and writing images, expanding inputs into jobs, one atomic writer.

Imports only the container's size limits and layouts (`codec.fcx`); no torch, so the CLI stays
instant. Everything that writes a file in this project goes through `files.atomic`."""
