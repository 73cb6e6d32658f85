"""The saga-outbox stack: composes one construct per concern and exports the outputs."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack, Tags
from constructs import Construct

from saga_outbox._app import SagaApp
from saga_outbox.cdk.config import DeploymentConfig
from saga_outbox.cdk.data import Database
from saga_outbox.cdk.functions import DISPATCHER_TIMEOUT, Functions
from saga_outbox.cdk.idempotency import IdempotencyStore
from saga_outbox.cdk.messaging import Messaging
from saga_outbox.cdk.network import Network
from saga_outbox.cdk.observability import Observability
from saga_outbox.cdk.orchestration import Orchestration
from saga_outbox.cdk.security import EncryptionKey, retention_days

__all__ = ["SagaOutboxStack"]


class SagaOutboxStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        app: SagaApp,
        app_spec: str,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        # AWS::RDS::DBProxyTargetGroup takes no Tags (CloudFormation rejects them: F3002).
        untaggable = ["AWS::RDS::DBProxyTargetGroup"]
        Tags.of(self).add("project", "saga-outbox", exclude_resource_types=untaggable)
        Tags.of(self).add("stage", config.stage, exclude_resource_types=untaggable)
        self.config = config

        self.keys = EncryptionKey(self, "Encryption", retention=retention_days(config.log_retention_days))
        self.network = Network(self, "Network", nat_gateways=config.nat_gateways, keys=self.keys)
        self.database = Database(self, "Data", network=self.network, config=config)
        self.messaging = Messaging(
            self,
            "Messaging",
            keys=self.keys,
            max_receive_count=config.max_receive_count,
            high_throughput=config.high_throughput_fifo,
            # AWS: at least 6x the consumer's timeout, so retries inside one batch don't redeliver.
            visibility_timeout=Duration.seconds(DISPATCHER_TIMEOUT.to_seconds() * 6),
        )
        self.idempotency = IdempotencyStore(self, "Idempotency")
        self.functions = Functions(
            self,
            "Functions",
            config=config,
            keys=self.keys,
            network=self.network,
            database=self.database,
            messaging=self.messaging,
            idempotency=self.idempotency,
            app_spec=app_spec,
        )
        self.orchestration = Orchestration(
            self, "Workflows", app=app, keys=self.keys, functions={"steps": self.functions.steps}
        )
        self.functions.add_dispatcher(
            messaging=self.messaging, state_machines=self.orchestration.state_machines
        )
        self.observability = Observability(
            self,
            "Observability",
            config=config,
            keys=self.keys,
            messaging=self.messaging,
            state_machines=self.orchestration.state_machines,
            state_machine_kinds=self.orchestration.kinds,
            state_machine_logs=self.orchestration.log_groups,
            functions=self.functions.all,
        )

        CfnOutput(self, "QueueUrl", value=self.messaging.queue.queue_url)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.messaging.dead_letter_queue.queue_url)
        CfnOutput(self, "CommandApiUrl", value=self.functions.command_api_url.url)
        CfnOutput(self, "DatabaseProxyEndpoint", value=self.database.proxy_endpoint)
        if self.database.secret is not None:
            CfnOutput(self, "DatabaseSecretArn", value=self.database.secret.secret_arn)
        CfnOutput(self, "IdempotencyTableName", value=self.idempotency.table.table_name)
        CfnOutput(self, "AlarmTopicArn", value=self.observability.topic.topic_arn)
        for name, sm in self.orchestration.state_machines.items():
            CfnOutput(self, f"{name}StateMachineArn", value=sm.state_machine_arn)
