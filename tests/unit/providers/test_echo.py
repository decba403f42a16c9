from gateway_app.providers.base import ChatMessage, ChatRequest
from gateway_app.providers.echo import EchoProvider


async def test_echo_answers_with_the_message_and_counts_words():
    request = ChatRequest("echo-1", "be brief", (ChatMessage("user", "one two three"),), 0.0, 2)
    result = await EchoProvider().complete(request)
    assert result.text == "one two" and result.finish_reason == "length"
    assert result.usage.input_tokens == 5 and result.usage.output_tokens == 2
