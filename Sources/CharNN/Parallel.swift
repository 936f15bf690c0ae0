import CKernels
import Dispatch

/// Runs `body(0..<count)` on up to `count` threads and returns when all are done.
/// The caller guarantees that the iterations touch disjoint memory.
///
/// An instruction set forced on the calling thread (`ck_force_isa`, for tests) is forced on
/// the workers too, for the length of the call, so that a forced set covers the whole pass;
/// so is a forced weight-gradient route (`ck_force_weight_gradients`).
func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    if count == 1 {
        body(0)
        return
    }
    let forced = ck_isa_forced_on_thread(), route = ck_weight_gradients_forced()
    withoutActuallyEscaping(body) { escapable in
        let box = UncheckedSendableBox(escapable)
        DispatchQueue.concurrentPerform(iterations: count) { i in
            let previous = ck_isa_forced_on_thread(), previousRoute = ck_weight_gradients_forced()
            ck_force_isa(forced)
            ck_force_weight_gradients(route)
            box.value(i)
            ck_force_isa(previous)
            ck_force_weight_gradients(previousRoute)
        }
    }
}

private struct UncheckedSendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
