"""A Ray cluster of N nodes on this machine, for the tests: ``python ray_cluster.py N``.

Run with Ray's single-machine switch and token authentication in the environment (see
``test_sweep_cluster.cluster_environment``), so that every node and port is on loopback and a
client needs the token.  It prints one JSON line, ``{"address": ..., "nodes": [node ids]}``, then
keeps the cluster up until its standard input closes, and shuts it down.
"""

import json
import sys

from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
for _ in range(int(sys.argv[1]) - 1):
    cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
print(json.dumps({"address": cluster.address, "nodes": [node.node_id for node in cluster.list_all_nodes()]}),
      flush=True)
sys.stdin.read()
cluster.shutdown()
