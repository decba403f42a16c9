"""Prompt: the normalized request from the profile, the room's conversation and the new input (a user
message, or tool results for an earlier turn's tool calls). The model and provider options are set per
target by the call stage.

The conversation is read only when the profile keeps one (`context.max_turns` > 0) or the input is tool
results (their exchange is always sent whole). The turn an ok reply appends is prepared here
(`ctx.new_turn`); the outputs stage writes it.
"""

from __future__ import annotations

from agents_tables.conversations import Turn
from gateway_app.contract.events import AgentProfile
from gateway_app.pipeline import conversation, formats
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services
from gateway_app.providers.base import ChatMessage, ChatRequest


def keeps_context(profile: AgentProfile) -> bool:
    return profile.context is not None and profile.context.max_turns > 0


def build_request(profile: AgentProfile, messages: tuple[ChatMessage, ...]) -> ChatRequest:
    reply_format = profile.response_format
    system_prompt = profile.system_prompt
    if reply_format.type == "json":  # also where the provider has a JSON mode (some want it said in words)
        system_prompt = "\n\n".join(p for p in (system_prompt, formats.json_instruction(reply_format.json_schema)) if p)
    return ChatRequest(
        model=profile.model,
        system_prompt=system_prompt,
        messages=messages,
        temperature=profile.temperature,
        max_tokens=profile.max_tokens,
        stop=tuple(profile.stop),
        tools=tuple({"type": "function", "function": tool.function.model_dump()} for tool in profile.tools),
        options=profile.options,
        response_format="json" if reply_format.type == "json" else "text",
        json_schema=reply_format.json_schema,
    )


class Prompt:
    name = "prompt"

    def __init__(self, services: Services) -> None:
        self.conversations = services.stores.conversations

    async def run(self, ctx: MessageContext) -> None:
        profile, message, results = ctx.require_profile(), ctx.message, ctx.tool_results
        conv = None
        if keeps_context(profile) or results is not None:
            conv = ctx.conversation_row = self.conversations.get(message.agent_id, message.room_id)
        at_ms = int(message.created_at.timestamp() * 1000) if message.created_at else ctx.origin.received_at_ms
        if results is None:
            new_input = [ChatMessage("user", message.content)]
            ctx.new_turn = Turn(message.message_id, "message", at_ms, 0, user=message.content)
        else:
            outputs = conversation.checked_results(conv, results)  # raises for unknown / answered calls
            new_input = conversation.tool_messages(outputs)
            ctx.new_turn = Turn(message.message_id, "tool_results", at_ms, 0, results=outputs,
                                reply_to=results.reply_to)
        window = conversation.window(conv, profile.context, message.message_id, new_input,
                                     continued=results.reply_to if results else None)
        ctx.request = build_request(profile, window.messages)
        ctx.prompt_estimate = conversation.prompt_estimate(ctx.request.system_prompt, window.messages)
        ctx.input_estimate = sum(conversation.raw_estimate(m) for m in new_input)
