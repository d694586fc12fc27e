"""Drawing a TensorFlow graph: operations as boxes, tensors as arrows, laid out by depth."""

from __future__ import annotations


def graph_edges(graph) -> tuple[list, list[tuple[str, str, str]]]:
    """(operations, [(producer, consumer, tensor name)]) of a tf.Graph or a FuncGraph."""
    operations = graph.get_operations()
    edges = [(tensor.op.name, op.name, tensor.name) for op in operations for tensor in op.inputs]
    return operations, edges


def draw_graph(graph, ax, title: str = ""):
    """Each operation in a box (name and type), placed in columns by its distance from the inputs."""
    operations, edges = graph_edges(graph)
    depth: dict[str, int] = {}
    for op in operations:  # get_operations() lists producers before consumers
        depth[op.name] = 1 + max((depth[t.op.name] for t in op.inputs), default=-1)
    rows: dict[int, int] = {}
    where = {}
    for op in operations:
        column = depth[op.name]
        where[op.name] = (column, rows.get(column, 0))
        rows[column] = rows.get(column, 0) + 1
    for producer, consumer, tensor in edges:
        (x0, y0), (x1, y1) = where[producer], where[consumer]
        ax.annotate("", (x1 - 0.32, -y1), (x0 + 0.32, -y0),
                    arrowprops=dict(arrowstyle="->", color="#0071c5", lw=1.2))
        ax.text((x0 + x1) / 2, -(y0 + y1) / 2 + 0.12, tensor.split("/")[-1], fontsize=7, ha="center",
                color="#0071c5")
    for op in operations:
        x, y = where[op.name]
        ax.text(x, -y, f"{op.name}\n{op.type}", ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", fc="white", ec="black"))
    ax.set(xlim=(-0.6, max(depth.values()) + 0.6), ylim=(-max(rows.values()) + 0.4, 0.6), title=title)
    ax.axis("off")
    return ax
