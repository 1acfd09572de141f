// Nodes inside subgraphs: execution ids ("12:5") and inputs fed from outside the subgraph (web/js/graph_nodes.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { inputOrigin, nodeByExecutionId } from "../../web/js/graph_nodes.js";

/** A graph of plain nodes with links {id: {origin_id, origin_slot}}; each node's inputs name their link. */
function graph(nodes, links = {}) {
  const g = { nodes, links, getNodeById: (id) => nodes.find((n) => n.id === id) ?? null };
  for (const node of nodes) {
    node.graph = g;
    node.getInputNode = (slot) => {
      const link = links[node.inputs?.[slot]?.link];
      return link ? g.getNodeById(link.origin_id) : null;
    };
  }
  return g;
}

// root: LoadImage 1 -> subgraph node 12 (input 0) ; inside 12: node 5 fed by the subgraph input 0, subgraph node 7
// whose inside node 3 is fed by node 7's input 0 <- node 5.
const load = { id: 1, type: "LoadImage" };
const deepest = { id: 3, type: "MattingHead", inputs: [{ link: 30 }] };
const innerGraph = graph([deepest], { 30: { origin_id: -10, origin_slot: 0 } });
const prompt = { id: 5, type: "IconMattingReferencePrompt", inputs: [{ link: 20 }] };
const nested = { id: 7, type: "subgraph", subgraph: innerGraph, inputs: [{ link: 21 }] };
const middle = graph([prompt, nested], { 20: { origin_id: -10, origin_slot: 0 }, 21: { origin_id: 5, origin_slot: 0 } });
const outer = { id: 12, type: "subgraph", subgraph: middle, inputs: [{ link: 10 }] };
const root = graph([load, outer], { 10: { origin_id: 1, origin_slot: 0 } });
const app = { rootGraph: root, graph: middle }; // the canvas shows the subgraph: execution ids still start at the root

test("execution ids name nodes at any depth, from the root graph", () => {
  assert.equal(nodeByExecutionId(app, "1"), load);
  assert.equal(nodeByExecutionId(app, "12"), outer);
  assert.equal(nodeByExecutionId(app, "12:5"), prompt);
  assert.equal(nodeByExecutionId(app, "12:7:3"), deepest);
  assert.equal(nodeByExecutionId(app, "5"), null); // not a root node
  assert.equal(nodeByExecutionId(app, "12:9"), null);
  assert.equal(nodeByExecutionId({ graph: root }, "12:5"), prompt); // frontends without app.rootGraph
});

test("an input fed by the subgraph's input node is followed out to the outer graph", () => {
  assert.equal(inputOrigin(app, prompt, 0), load);
  assert.equal(inputOrigin(app, nested, 0), prompt);
  assert.equal(inputOrigin(app, deepest, 0), prompt); // two levels out: 3 <- 7's input 0 <- 5
  assert.equal(inputOrigin(app, { ...load, inputs: [] }, 0), null);
});

test("string ids and link ends, subgraph nodes without getInputNode (frontend 1.58 after Convert to Subgraph)", () => {
  const image = { id: "1", type: "LoadImage" };
  const converted = { id: "2", type: "IconMattingReferencePrompt", inputs: [{ link: 5 }] };
  const inside = graph([converted], { 5: { origin_id: "-10", origin_slot: 0 } });
  const subgraphNode = { id: "7", type: "subgraph", subgraph: inside, inputs: [{ link: 9 }] };
  const top = graph([image, subgraphNode], { 9: { origin_id: "1", origin_slot: 0 } });
  delete subgraphNode.getInputNode;
  assert.equal(inputOrigin({ rootGraph: top, graph: inside }, converted, 0), image);
});
