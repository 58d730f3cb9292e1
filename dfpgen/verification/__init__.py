"""Independent references and oneDNN's conformance suites: how dfpgen checks itself."""
