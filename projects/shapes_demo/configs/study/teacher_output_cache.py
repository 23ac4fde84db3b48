# What every study variant adds to its default-run config: the teacher runs
# once per view of the training scenes (the demo's pipelines only flip, so
# each scene has two views) and its tapped outputs are served from memory
# when the view comes back (mmkd.TeacherOutputCacheHook). What the students
# are taught is the same up to floating-point rounding; a distilled step
# then costs about its baseline's (docs/times.md of the demo).
custom_hooks = [dict(type='mmkd.TeacherOutputCacheHook', max_gb=4)]
