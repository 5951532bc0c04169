#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agentd/handlers.h"
#include "shared/config.h"

static struct vmlet_config cfg;

static int setup(void **state)
{
	vmlet_config_defaults(&cfg);
	snprintf(cfg.node_id, sizeof(cfg.node_id), "node-a");
	return 0;
}

/* ---- the table itself ----------------------------------------------------- */

static void every_request_case_present_once(void **state)
{
	const ProtobufCMessageDescriptor *d = &vmlet__v1__agent_request__descriptor;
	size_t rows = 0;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const struct agentd_handler *h;
		/* AgentRequest is nothing but the oneof. */
		assert_true(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
		assert_true(f->id < agentd_handlers_len);
		h = &agentd_handlers[f->id];
		assert_int_equal(h->request_case, (int)f->id);
		assert_string_equal(h->name, f->name);
		assert_non_null(h->prepare);
	}
	for (size_t i = 0; i < agentd_handlers_len; i++)
		if (agentd_handlers[i].request_case) {
			assert_int_equal(agentd_handlers[i].request_case, (int)i);
			rows++;
		}
	/* Exactly one row per oneof member: nothing more, nothing less. */
	assert_int_equal(rows, d->n_fields);
	assert_int_equal(rows, 7);
}

static void transports_of_each_row(void **state)
{
	struct vmlet_err err;

	/* The spine serves all six requests to coordinators and local admins. */
	for (int c = 1; c <= 6; c++) {
		assert_non_null(agentd_handler_lookup(agentd_handlers, agentd_handlers_len, c,
						      AGENTD_TRANSPORT_TLS, &err));
		assert_non_null(agentd_handler_lookup(agentd_handlers, agentd_handlers_len, c,
						      AGENTD_TRANSPORT_LOCAL, &err));
		/* Only these requests need hostd; reconcile is answered in agentd. */
		assert_true(agentd_handlers[c].finish != NULL ||
			    c == VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE);
	}
	/* net verify is a local admin's: refused over TLS with 403 */
	assert_non_null(agentd_handler_lookup(agentd_handlers, agentd_handlers_len,
					      VMLET__V1__AGENT_REQUEST__REQUEST_NET_VERIFY,
					      AGENTD_TRANSPORT_LOCAL, &err));
	assert_null(agentd_handler_lookup(agentd_handlers, agentd_handlers_len,
					  VMLET__V1__AGENT_REQUEST__REQUEST_NET_VERIFY,
					  AGENTD_TRANSPORT_TLS, &err));
	assert_int_equal(err.code, 403);
	assert_string_equal(err.msg, "net_verify is not allowed over the tls transport");
}

static int prepare_dummy(const Vmlet__V1__AgentRequest *req, const struct vmlet_config *c,
			 struct agentd_host_call *call, struct vmlet_err *err)
{
	return 0;
}

static void transport_flags_are_enforced(void **state)
{
	/* A table with a local-only row (the shape admin-only requests take). */
	const struct agentd_handler table[] = {
		[1] = { 1, "admin_thing", AGENTD_TRANSPORT_LOCAL, prepare_dummy, NULL },
		[2] = { 2, "coordinator_thing", AGENTD_TRANSPORT_TLS, prepare_dummy, NULL },
	};
	struct vmlet_err err;

	assert_non_null(agentd_handler_lookup(table, 3, 1, AGENTD_TRANSPORT_LOCAL, &err));
	assert_null(agentd_handler_lookup(table, 3, 1, AGENTD_TRANSPORT_TLS, &err));
	assert_int_equal(err.code, 403);
	assert_string_equal(err.msg, "admin_thing is not allowed over the tls transport");
	assert_null(agentd_handler_lookup(table, 3, 2, AGENTD_TRANSPORT_LOCAL, &err));
	assert_int_equal(err.code, 403);
	assert_non_null(agentd_handler_lookup(table, 3, 2, AGENTD_TRANSPORT_TLS, &err));
}

static void unknown_case_is_400(void **state)
{
	struct vmlet_err err;
	const int bad[] = { 0, -1, 7, 99, 1 << 30 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(agentd_handler_lookup(agentd_handlers, agentd_handlers_len, bad[i],
						  AGENTD_TRANSPORT_LOCAL, &err));
		assert_int_equal(err.code, 400);
		assert_non_null(strstr(err.msg, "unknown request type"));
	}
	/* An empty row in the middle of a table is unknown too. */
	const struct agentd_handler holes[] = { [2] = { 2, "x", AGENTD_TRANSPORT_TLS, prepare_dummy,
							NULL } };
	assert_null(agentd_handler_lookup(holes, 3, 1, AGENTD_TRANSPORT_TLS, &err));
	assert_int_equal(err.code, 400);
}

/* ---- prepare ---------------------------------------------------------------- */

static int prepare(Vmlet__V1__AgentRequest *req, struct agentd_host_call *call,
		   struct vmlet_err *err)
{
	const struct agentd_handler *h = agentd_handler_lookup(
		agentd_handlers, agentd_handlers_len, (int)req->request_case, AGENTD_TRANSPORT_TLS, err);
	assert_non_null(h);
	memset(call, 0, sizeof(*call));
	vmlet__host__v1__host_request__init(&call->req);
	return h->prepare(req, &cfg, call, err);
}

static void simple_requests_map_to_host_ops(void **state)
{
	Vmlet__V1__AgentRequest req = VMLET__V1__AGENT_REQUEST__INIT;
	Vmlet__V1__NodeInfoRequest ni = VMLET__V1__NODE_INFO_REQUEST__INIT;
	Vmlet__V1__NodeStatsRequest ns = VMLET__V1__NODE_STATS_REQUEST__INIT;
	Vmlet__V1__TenantListRequest tl = VMLET__V1__TENANT_LIST_REQUEST__INIT;
	struct agentd_host_call call;
	struct vmlet_err err;

	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_NODE_INFO;
	req.node_info = &ni;
	assert_int_equal(prepare(&req, &call, &err), 0);
	assert_int_equal(call.req.op_case, VMLET__HOST__V1__HOST_REQUEST__OP_NODE_FACTS);
	assert_non_null(call.req.node_facts);

	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_NODE_STATS;
	req.node_stats = &ns;
	assert_int_equal(prepare(&req, &call, &err), 0);
	assert_int_equal(call.req.op_case, VMLET__HOST__V1__HOST_REQUEST__OP_NODE_STATS);

	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_TENANT_LIST;
	req.tenant_list = &tl;
	assert_int_equal(prepare(&req, &call, &err), 0);
	assert_int_equal(call.req.op_case, VMLET__HOST__V1__HOST_REQUEST__OP_LIST_TENANTS);
	/* What is built must pack (it goes on the wire as is). */
	assert_true(protobuf_c_message_check(&call.req.base));
}

static void instance_list_validated_first(void **state)
{
	Vmlet__V1__AgentRequest req = VMLET__V1__AGENT_REQUEST__INIT;
	Vmlet__V1__InstanceListRequest il = VMLET__V1__INSTANCE_LIST_REQUEST__INIT;
	struct agentd_host_call call;
	struct vmlet_err err;

	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_INSTANCE_LIST;
	req.instance_list = &il;
	il.tenant_id = (char *)"Bad_ID";
	assert_int_equal(prepare(&req, &call, &err), -1);
	assert_int_equal(err.code, 400);
	assert_non_null(strstr(err.msg, "tenant_id"));
	assert_int_equal(call.req.op_case, 0); /* nothing for hostd */

	il.tenant_id = (char *)"";
	assert_int_equal(prepare(&req, &call, &err), -1);
	assert_int_equal(err.code, 400);

	il.tenant_id = (char *)"acme";
	il.pool_id = (char *)"../etc";
	assert_int_equal(prepare(&req, &call, &err), -1);
	assert_int_equal(err.code, 400);
	assert_non_null(strstr(err.msg, "pool_id"));

	il.pool_id = (char *)"web";
	assert_int_equal(prepare(&req, &call, &err), 0);
	assert_int_equal(call.req.op_case, VMLET__HOST__V1__HOST_REQUEST__OP_LIST_INSTANCES);
	assert_string_equal(call.req.list_instances->tenant_id, "acme");
	assert_string_equal(call.req.list_instances->pool_id, "web");
}

static void wake_validated_then_host_wake(void **state)
{
	Vmlet__V1__AgentRequest req = VMLET__V1__AGENT_REQUEST__INIT;
	Vmlet__V1__WakeInstanceRequest w = VMLET__V1__WAKE_INSTANCE_REQUEST__INIT;
	struct agentd_host_call call;
	struct vmlet_err err;
	static const char *const bad_instances[] = { "i-XYZ", "", "i-0123abc", "i-0123abcde",
						    "../../etc", "i-0123ABCD" };

	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_WAKE_INSTANCE;
	req.wake_instance = &w;
	w.tenant_id = (char *)"acme";
	w.pool_id = (char *)"web";
	for (size_t k = 0; k < sizeof(bad_instances) / sizeof(bad_instances[0]); k++) {
		w.instance_id = (char *)bad_instances[k];
		assert_int_equal(prepare(&req, &call, &err), -1);
		assert_int_equal(err.code, 400);
		assert_non_null(strstr(err.msg, "instance_id"));
		assert_int_equal(call.req.op_case, 0); /* nothing for hostd */
	}
	w.instance_id = (char *)"i-0123abcd";
	w.tenant_id = (char *)"../acme";
	assert_int_equal(prepare(&req, &call, &err), -1);
	assert_int_equal(err.code, 400);
	assert_non_null(strstr(err.msg, "tenant_id"));
	w.tenant_id = (char *)"acme";
	w.pool_id = (char *)"Web/x";
	assert_int_equal(prepare(&req, &call, &err), -1);
	assert_int_equal(err.code, 400);
	assert_non_null(strstr(err.msg, "pool_id"));

	w.pool_id = (char *)"web";
	assert_int_equal(prepare(&req, &call, &err), 0);
	assert_int_equal(call.req.op_case, VMLET__HOST__V1__HOST_REQUEST__OP_INSTANCE_ACTION);
	assert_int_equal(call.req.instance_action->action,
			 VMLET__HOST__V1__INSTANCE_ACTION__INSTANCE_ACTION_WAKE);
	assert_string_equal(call.req.instance_action->tenant_id, "acme");
	assert_string_equal(call.req.instance_action->pool_id, "web");
	assert_string_equal(call.req.instance_action->instance_id, "i-0123abcd");
	assert_int_equal(call.req.instance_action->graceful_ms, 0);
	assert_true(protobuf_c_message_check(&call.req.base));
}

static void reconcile_validates_then_goes_to_the_engine(void **state)
{
	Vmlet__V1__AgentRequest req = VMLET__V1__AGENT_REQUEST__INIT;
	Vmlet__V1__ReconcileRequest rr = VMLET__V1__RECONCILE_REQUEST__INIT;
	Vmlet__V1__DesiredState ds = VMLET__V1__DESIRED_STATE__INIT;
	struct agentd_host_call call;
	struct vmlet_err err;

	req.request_case = VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE;
	req.reconcile = &rr;
	assert_int_equal(prepare(&req, &call, &err), -1);
	assert_int_equal(err.code, 400);
	assert_string_equal(err.msg, "reconcile.desired_state: required");

	rr.desired_state = &ds;
	ds.schema_version = 1;
	ds.node_id = (char *)"other-node";
	assert_int_equal(prepare(&req, &call, &err), -1);
	assert_int_equal(err.code, 400);
	assert_non_null(strstr(err.msg, "node_id"));

	ds.schema_version = 2;
	ds.node_id = (char *)"node-a";
	assert_int_equal(prepare(&req, &call, &err), -1);
	assert_int_equal(err.code, 400);
	assert_non_null(strstr(err.msg, "schema_version"));

	/* Valid: no host request is prepared; the row's serve() hands the
	 * state to the reconcile engine (tested in test_agentd_reconcile). */
	ds.schema_version = 1;
	memset(&call, 0, sizeof(call));
	assert_int_equal(prepare(&req, &call, &err), 0);
	assert_int_equal(call.req.op_case, 0);
	assert_non_null(agentd_handlers[VMLET__V1__AGENT_REQUEST__REQUEST_RECONCILE].serve);
}

/* ---- replies ------------------------------------------------------------------ */

static void host_error_keeps_code_and_message(void **state)
{
	Vmlet__Host__V1__HostResponse resp = VMLET__HOST__V1__HOST_RESPONSE__INIT;
	Vmlet__Host__V1__HostError he = VMLET__HOST__V1__HOST_ERROR__INIT;
	Vmlet__V1__AgentResponse out = VMLET__V1__AGENT_RESPONSE__INIT;
	const struct agentd_handler *wake = &agentd_handlers[VMLET__V1__AGENT_REQUEST__REQUEST_WAKE_INSTANCE];
	union agentd_reply_scratch scratch;
	struct vmlet_err err;

	resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_ERROR;
	resp.error = &he;
	he.code = 404;
	he.message = (char *)"instance acme/web/i-0123abcd not found";
	assert_int_equal(agentd_handler_reply(wake, &resp, 0, &scratch, &out, &err), -1);
	assert_int_equal(err.code, 404);
	assert_string_equal(err.msg, "instance acme/web/i-0123abcd not found");

	/* A wake refused for the instance's state: hostd's 409 names it. */
	he.code = 409;
	he.message = (char *)"cannot WAKE instance acme/web/i-0123abcd: it is stopped (allowed from: warm, sleeping)";
	assert_int_equal(agentd_handler_reply(wake, &resp, 0, &scratch, &out, &err), -1);
	assert_int_equal(err.code, 409);
	assert_non_null(strstr(err.msg, "it is stopped"));

	he.code = 503;
	assert_int_equal(agentd_handler_reply(wake, &resp, 0, &scratch, &out, &err), -1);
	assert_int_equal(err.code, 503);

	/* A "success" or nonsense code in an error is not passed through. */
	he.code = 200;
	assert_int_equal(agentd_handler_reply(wake, &resp, 0, &scratch, &out, &err), -1);
	assert_int_equal(err.code, 500);
	he.code = 0;
	assert_int_equal(agentd_handler_reply(wake, &resp, 0, &scratch, &out, &err), -1);
	assert_int_equal(err.code, 500);
	he.code = 1000;
	assert_int_equal(agentd_handler_reply(wake, &resp, 0, &scratch, &out, &err), -1);
	assert_int_equal(err.code, 500);
}

static void results_map_to_responses(void **state)
{
	Vmlet__Host__V1__HostResponse resp = VMLET__HOST__V1__HOST_RESPONSE__INIT;
	Vmlet__V1__NodeInfo ni = VMLET__V1__NODE_INFO__INIT;
	Vmlet__V1__NodeStats ns = VMLET__V1__NODE_STATS__INIT;
	Vmlet__V1__AgentResponse out = VMLET__V1__AGENT_RESPONSE__INIT;
	union agentd_reply_scratch scratch;
	struct vmlet_err err;

	resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_NODE_FACTS;
	resp.node_facts = &ni;
	assert_int_equal(agentd_handler_reply(&agentd_handlers[2], &resp, 0, &scratch, &out, &err), 0);
	assert_int_equal(out.response_case, VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_INFO);
	assert_ptr_equal(out.node_info, &ni);

	/* The wrong kind of result for the request is an internal error. */
	assert_int_equal(agentd_handler_reply(&agentd_handlers[3], &resp, 0, &scratch, &out, &err), -1);
	assert_int_equal(err.code, 500);
	assert_non_null(strstr(err.msg, "node_stats"));

	resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_NODE_STATS;
	resp.node_stats = &ns;
	assert_int_equal(agentd_handler_reply(&agentd_handlers[3], &resp, 0, &scratch, &out, &err), 0);
	assert_int_equal(out.response_case, VMLET__V1__AGENT_RESPONSE__RESPONSE_NODE_STATS);

	/* Reconcile never goes to hostd: a reply for it is an error. */
	assert_int_equal(agentd_handler_reply(&agentd_handlers[1], &resp, 0, &scratch, &out, &err), -1);
	assert_int_equal(err.code, 500);
}

static void wake_result_carries_instance_and_time(void **state)
{
	Vmlet__Host__V1__HostResponse resp = VMLET__HOST__V1__HOST_RESPONSE__INIT;
	Vmlet__V1__InstanceInfo ii = VMLET__V1__INSTANCE_INFO__INIT;
	Vmlet__V1__AgentResponse out = VMLET__V1__AGENT_RESPONSE__INIT;
	const struct agentd_handler *wake = &agentd_handlers[VMLET__V1__AGENT_REQUEST__REQUEST_WAKE_INSTANCE];
	union agentd_reply_scratch scratch;
	struct vmlet_err err;

	resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCE;
	resp.instance = &ii;
	ii.instance_id = (char *)"i-0123abcd";
	ii.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING;
	ii.pid = 77;
	assert_int_equal(agentd_handler_reply(wake, &resp, 123456, &scratch, &out, &err), 0);
	assert_int_equal(out.response_case, VMLET__V1__AGENT_RESPONSE__RESPONSE_WAKE_INSTANCE);
	assert_ptr_equal(out.wake_instance->instance, &ii);
	assert_int_equal(out.wake_instance->wake_micros, 123456);
	assert_true(protobuf_c_message_check(&out.base));
}

static void wake_answered_not_running_is_500(void **state)
{
	Vmlet__Host__V1__HostResponse resp = VMLET__HOST__V1__HOST_RESPONSE__INIT;
	Vmlet__V1__InstanceInfo ii = VMLET__V1__INSTANCE_INFO__INIT;
	Vmlet__V1__InstanceListResult il = VMLET__V1__INSTANCE_LIST_RESULT__INIT;
	Vmlet__V1__AgentResponse out = VMLET__V1__AGENT_RESPONSE__INIT;
	const struct agentd_handler *wake = &agentd_handlers[VMLET__V1__AGENT_REQUEST__REQUEST_WAKE_INSTANCE];
	union agentd_reply_scratch scratch;
	struct vmlet_err err;

	/* A "successful" wake that left the instance asleep would be a lie. */
	resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCE;
	resp.instance = &ii;
	ii.state = VMLET__V1__INSTANCE_STATE__INSTANCE_STATE_SLEEPING;
	assert_int_equal(agentd_handler_reply(wake, &resp, 5, &scratch, &out, &err), -1);
	assert_int_equal(err.code, 500);
	assert_non_null(strstr(err.msg, "not running"));
	assert_int_equal(out.response_case, 0);
	/* No instance, or the wrong kind of result: 500 too. */
	resp.instance = NULL;
	assert_int_equal(agentd_handler_reply(wake, &resp, 5, &scratch, &out, &err), -1);
	assert_int_equal(err.code, 500);
	resp.result_case = VMLET__HOST__V1__HOST_RESPONSE__RESULT_INSTANCES;
	resp.instances = &il;
	assert_int_equal(agentd_handler_reply(wake, &resp, 5, &scratch, &out, &err), -1);
	assert_int_equal(err.code, 500);
	assert_non_null(strstr(err.msg, "wake_instance"));
	assert_int_equal(out.response_case, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_request_case_present_once),
		cmocka_unit_test(transports_of_each_row),
		cmocka_unit_test(transport_flags_are_enforced),
		cmocka_unit_test(unknown_case_is_400),
		cmocka_unit_test(simple_requests_map_to_host_ops),
		cmocka_unit_test(instance_list_validated_first),
		cmocka_unit_test(wake_validated_then_host_wake),
		cmocka_unit_test(reconcile_validates_then_goes_to_the_engine),
		cmocka_unit_test(host_error_keeps_code_and_message),
		cmocka_unit_test(results_map_to_responses),
		cmocka_unit_test(wake_result_carries_instance_and_time),
		cmocka_unit_test(wake_answered_not_running_is_500),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
