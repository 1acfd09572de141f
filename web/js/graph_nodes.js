// Nodes at any depth of the workflow, for the pack's extensions. A subgraph node (ComfyUI frontend 1.2x and later)
// holds its inner nodes in node.subgraph; ComfyUI names an inner node in its messages by its execution id: the ids of
// the subgraph nodes on the way and its own, joined by ":" ("12:5" = node 5 inside subgraph node 12). Frontends
// without subgraphs (no app.rootGraph, no node.subgraph) see only plain ids. Only graph and node APIs the extension
// API hands out are used (app.rootGraph / app.graph, graph.getNodeById, graph.nodes, graph.getLink / graph.links,
// node.inputs, node.subgraph, node.getInputNode).

const SUBGRAPH_INPUT_NODE = -10; // the id a subgraph's input node has in the links inside it

/** The workflow's root graph, whichever graph the canvas shows. */
export function rootGraph(app) {
  return app.rootGraph ?? app.graph;
}

/** The node ComfyUI's execution id names ("7", or "12:5" inside subgraph node 12); null if there is none. */
export function nodeByExecutionId(app, executionId) {
  let graph = rootGraph(app);
  let node = null;
  for (const part of String(executionId).split(":")) {
    const id = Number.isNaN(Number(part)) ? part : Number(part);
    node = graph?.getNodeById?.(id) ?? null;
    if (!node) return null;
    graph = node.subgraph;
  }
  return node;
}

/** The subgraph node whose inner graph is `graph`, searched from the root at any depth (the first instance). */
function subgraphNodeOf(app, graph) {
  const pending = [rootGraph(app)];
  while (pending.length) {
    for (const node of pending.pop()?.nodes ?? []) {
      if (!node.subgraph) continue;
      if (node.subgraph === graph) return node;
      pending.push(node.subgraph);
    }
  }
  return null;
}

/**
 * The node feeding input `slot` of `node`: inside a subgraph, an input linked to the subgraph's input node is
 * followed out to what feeds that input of the subgraph node (at any depth); null if unlinked. Links are read from the
 * graph (frontend 1.58 gives node and link ends as strings after Convert Selection to Subgraph, and its subgraph nodes
 * answer no getInputNode); node.getInputNode only where the graph has no link table.
 */
export function inputOrigin(app, node, slot) {
  const linkId = node.inputs?.[slot]?.link;
  if (linkId == null) return null;
  const graph = node.graph;
  const link = graph?.getLink?.(linkId) ?? graph?.links?.get?.(linkId) ?? graph?.links?.[linkId];
  if (!link) return node.getInputNode?.(slot) ?? null;
  if (Number(link.origin_id) === SUBGRAPH_INPUT_NODE) {
    const outer = subgraphNodeOf(app, graph);
    return outer ? inputOrigin(app, outer, link.origin_slot) : null;
  }
  return graph.getNodeById?.(link.origin_id) ?? null;
}
