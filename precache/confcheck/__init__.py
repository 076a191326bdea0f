"""Start-up checks of a service's configuration.

Kept beside, not inside, :mod:`precache.conf`: that package holds one
module per option group, and these read every group.
"""
