-- The task table the API owns (Django model, table choreography_tasks), as the job uses it (SPEC §5).
-- Shipped for tests, docker compose (mounted into /docker-entrypoint-initdb.d) and the embedded database;
-- the job never runs it against the production database. Idempotent: safe to run on every start.
-- Defaults mirror the Django model's field defaults so a bare insert (task_id, user_id, status) works.
create table if not exists choreography_tasks (
  task_id varchar(36) not null primary key,
  user_id bigint not null,
  status varchar(20) not null default 'pending',
  progress integer not null default 0,
  stage varchar(50) not null default '',
  message text not null default '',
  result jsonb null,
  error text null,
  created_at timestamp with time zone not null default now(),
  updated_at timestamp with time zone not null default now()
);

-- Django indexes a ForeignKey column (the API's user_id references its user table).
create index if not exists choreography_tasks_user_id_idx on choreography_tasks (user_id);
