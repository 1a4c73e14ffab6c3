"""The control plane for testers: everything under `/_warp-registry/`.

A test suite drives warp-registry through it: reset and seed the registry, export and
import it, freeze or move the server clock, read the request journal, inject faults. The
rate limiter (`serve --rate-limit`) lives here too, as it shares the request hook. None
of it is a Cloudflare endpoint; docs/control-plane.md describes it.
"""

CONTROL_PREFIX = "/_warp-registry"
