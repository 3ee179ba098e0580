package auditlog

import "context"

type actorKey struct{}

// WithActor returns a context that says who is acting, so the services
// that record events (identity, consent, keys, …) need not pass the actor
// through every call.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor set by WithActor, or the hub itself when
// nothing set one (background jobs, start-up).
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok {
		return a
	}
	return Actor{Kind: ActorHub}
}

// Record appends ev, filling in the actor from ctx when ev has none. It
// returns once the event is durable and covered by a signed checkpoint.
func (l *Log) Record(ctx context.Context, ev Event) error {
	if ev.Actor.Kind == "" {
		ev.Actor = ActorFrom(ctx)
	}
	_, err := l.Append(ctx, ev)
	return err
}
