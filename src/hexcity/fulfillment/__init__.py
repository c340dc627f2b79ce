"""Order fulfillment: warehouse allocation, split vs consolidate, last-mile vehicle routing (issue 5).

Other modules may import only from here. See docs/fulfillment.md.
"""

from hexcity.fulfillment.adapters.ortools_solver import OrToolsSolver
from hexcity.fulfillment.adapters.pyvrp_solver import PyVrpSolver
from hexcity.fulfillment.adapters.road_matrix import RoutingRoadMatrix, StraightLineMatrix
from hexcity.fulfillment.adapters.sql_store import SqlAllocationStore
from hexcity.fulfillment.adapters.vrplib_reader import read_vrplib, read_vrplib_solution
from hexcity.fulfillment.domain.allocation import (
    Allocation,
    NoFeasibleAllocation,
    StoredOrder,
    allocate,
    allocation_to_dict,
)
from hexcity.fulfillment.domain.batch import BatchParams, BatchResult, greedy_plan, reoptimise
from hexcity.fulfillment.domain.delivery import Delivery, HistoryEntry, PlanStop, RoutePlan, parcel_id
from hexcity.fulfillment.domain.insertion import Insertion, RouteStop, RunningRoute, best_insertion
from hexcity.fulfillment.domain.network import CostModel, Lane, NetworkView, Order, OrderLine, Sla, Warehouse
from hexcity.fulfillment.domain.problem import Depot, Job, Objective, Shipment, VehicleType, VrpProblem
from hexcity.fulfillment.domain.solution import (
    PlannedRoute,
    Stop,
    Unassigned,
    VrpSolution,
    check_solution,
    replay_route,
)
from hexcity.fulfillment.domain.solving import SolverParams
from hexcity.fulfillment.errors import (
    DeliveryConflict,
    FulfillmentError,
    InvalidOrder,
    InvalidProblem,
    OrderNotFound,
    OrderNotPicked,
    OutOfStock,
    PlanCancelled,
    PlanNotFound,
    ProblemTooBig,
    StockConflict,
    StockInvariantBroken,
    StopNotFound,
    StopReplanned,
    UnknownSku,
    WarehouseNotFound,
)
from hexcity.fulfillment.http import FulfillmentApi, build_fulfillment_router
from hexcity.fulfillment.lastmile import (
    Courier,
    CourierRoute,
    LastMilePlan,
    LastMilePlanner,
    Parcel,
    PlannedStop,
    RouteGeometry,
)
from hexcity.fulfillment.ports import AllocationStore, RoadMatrix, TravelMatrix, VrpSolver
from hexcity.fulfillment.service import AllocationService, OrderView, VrpService
from hexcity.fulfillment.settings import FulfillmentSettings
from hexcity.fulfillment.vroom import VroomLimits, build_problem, parse_vroom
from hexcity.fulfillment.vroom_output import solution_to_vroom

__all__ = [
    "Allocation",
    "AllocationService",
    "AllocationStore",
    "BatchParams",
    "BatchResult",
    "CostModel",
    "Courier",
    "CourierRoute",
    "Delivery",
    "DeliveryConflict",
    "Depot",
    "FulfillmentApi",
    "FulfillmentError",
    "FulfillmentSettings",
    "HistoryEntry",
    "Insertion",
    "InvalidOrder",
    "InvalidProblem",
    "Job",
    "Lane",
    "LastMilePlan",
    "LastMilePlanner",
    "NetworkView",
    "NoFeasibleAllocation",
    "Objective",
    "OrToolsSolver",
    "Order",
    "OrderLine",
    "OrderNotFound",
    "OrderNotPicked",
    "OrderView",
    "OutOfStock",
    "Parcel",
    "PlanCancelled",
    "PlanNotFound",
    "PlanStop",
    "PlannedRoute",
    "PlannedStop",
    "ProblemTooBig",
    "PyVrpSolver",
    "RoadMatrix",
    "RouteGeometry",
    "RoutePlan",
    "RouteStop",
    "RoutingRoadMatrix",
    "RunningRoute",
    "Shipment",
    "Sla",
    "SolverParams",
    "SqlAllocationStore",
    "StockConflict",
    "StockInvariantBroken",
    "Stop",
    "StopNotFound",
    "StopReplanned",
    "StoredOrder",
    "StraightLineMatrix",
    "TravelMatrix",
    "Unassigned",
    "UnknownSku",
    "VehicleType",
    "VroomLimits",
    "VrpProblem",
    "VrpService",
    "VrpSolution",
    "VrpSolver",
    "Warehouse",
    "WarehouseNotFound",
    "allocate",
    "allocation_to_dict",
    "best_insertion",
    "build_fulfillment_router",
    "build_problem",
    "check_solution",
    "greedy_plan",
    "parcel_id",
    "parse_vroom",
    "read_vrplib",
    "read_vrplib_solution",
    "reoptimise",
    "replay_route",
    "solution_to_vroom",
]
