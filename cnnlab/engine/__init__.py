"""The engine: parameters, the execution plan and the loops that train and run a model.

``models`` (the containers) call into it; it calls the layers (reference kernels) and, through
the plan, the private accelerated units. Nothing below it imports it.
"""

from cnnlab.engine.plan import Plan, build_plan
from cnnlab.engine.training import Engine, TrainingStopped

__all__ = ["Engine", "Plan", "TrainingStopped", "build_plan"]
