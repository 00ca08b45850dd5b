"""Namespace labels, tracked only when asked for (rules with a namespaceSelector need them)."""

from podtier.webhook.headroom.tracker import ClusterHeadroom


def namespace(name, **labels):
    return {"kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def test_labels_follow_list_and_events():
    headroom = ClusterHeadroom(source="test", namespaces=True)
    assert headroom.namespace_labels("data") is None, "unknown before the first list"
    headroom.relist("Namespace", [[namespace("data", team="data"), namespace("web")]])
    assert headroom.namespace_labels("data") == {
        "team": "data",
        "kubernetes.io/metadata.name": "data",
    }
    headroom.apply("Namespace", "MODIFIED", namespace("web", team="data"))
    assert headroom.namespace_labels("web")["team"] == "data"
    headroom.apply("Namespace", "DELETED", namespace("web"))
    assert headroom.namespace_labels("web") is None
    headroom.relist("Namespace", [[namespace("other")]])
    assert headroom.namespace_labels("data") is None, "gone from the relist"


def test_not_tracked_unless_asked_and_readiness_waits_for_them_when_asked():
    plain = ClusterHeadroom(source="test")
    assert plain.kinds == ("Node", "Pod")
    assert plain.namespace_labels("data") is None
    tracked = ClusterHeadroom(source="test", namespaces=True)
    tracked.relist("Node", [[]])
    tracked.relist("Pod", [[]])
    assert not tracked.ready()
    tracked.relist("Namespace", [[]])
    assert tracked.ready()
