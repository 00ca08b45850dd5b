"""`podtier report`: what a platform team's tiers cost and waste, from pods, PodMetrics and
TaskProfiles, live or from a dump.

    source (file or cluster) ─► facts (PodRun, Usage, Profile) ─► figures (pure)
        ─► charts (matplotlib SVG) + page (one HTML file) | terminal (rich) | JSON
"""
