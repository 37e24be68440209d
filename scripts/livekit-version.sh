# The livekit-server versions bedrud is built and tested against (sourced by the scripts).
# LIVEKIT_VERSION is the one the packages carry; LIVEKIT_OLD_VERSION is an older release the
# tests also start, to keep the version-dependent config keys honest.
LIVEKIT_VERSION=1.13.5
LIVEKIT_OLD_VERSION=1.11.0
