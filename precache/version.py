"""The version string agents and conductors report to each other."""

from importlib import metadata

try:
    version_string = metadata.version('precache')
except metadata.PackageNotFoundError:  # running from a source tree
    version_string = '0.0.0'
