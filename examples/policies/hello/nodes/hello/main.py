"""Hello-world node: reads {"name": ...} as JSON on stdin, prints a greeting as JSON."""

import json
import sys

request = json.load(sys.stdin)
print(json.dumps({"greeting": f"Hello, {request['name']}!"}))
